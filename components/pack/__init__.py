"""Tokenise the mixture into fixed-length memmap shards with a per-bucket validation split."""
