"""Supervised task families (few-shot image classification, regression)."""
