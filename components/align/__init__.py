"""Alignment: conversational data, SFT and DPO with TRL."""
