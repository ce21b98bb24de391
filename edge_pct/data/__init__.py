"""Datasets and augmentation: COCO / LSP-extended readers and the shared crop augmentation."""
