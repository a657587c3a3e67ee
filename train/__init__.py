"""Training for `cartoon/` styles: unpaired photo and cartoon folders in, weights in the `cartoon/` format out.

    python -m train --config train/configs/ghibli.yaml [key=value ...] [--resume] [--export-dir weights/ghibli]

Nothing is imported here, so that `python -m train` can set OpenMP's environment before torch loads.
"""
