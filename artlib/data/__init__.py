"""The data layer: WikiArt/ArtEmis CSVs → labels, eras, checked images, one split → manifest.csv.

pandas, numpy and Pillow only — never torch, so ``prepare`` starts in a blink (a test asserts it).
Modules, in the order data flows: ``readers`` (the two CSVs), ``names`` (mojibake, Unicode forms),
``labels`` (emotion labels, eras), ``archive`` and ``images`` (finding and checking paintings),
``splits`` (one split per painting, groups kept whole), ``manifest`` (the named steps of prepare),
``demo`` (synthetic data in the real formats), ``explore`` (tables of a raw data root).
"""
