"""Pretrained helper networks (ImageNet feature extractors for perceptual losses), rebuilt in plain
torch; their weights come from pip packages through the checkpoint registry."""
