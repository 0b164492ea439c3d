"""Supervised initialisations (torchvision ResNet-50, random or ImageNet) for ft and seg."""
