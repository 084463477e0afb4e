"""Task-distribution gymnasium environments, registered as ``metarl/<Name>-v0`` (see issue 3)."""
