"""Helper code of the MultiFair example bundle (on ``sys.path`` via the bundle root, as MONAI bundles do)."""
