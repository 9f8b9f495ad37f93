"""One module per payment provider: signature verification and normalization into canonical events."""
