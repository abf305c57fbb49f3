"""Adapters that let other trainers use the sinternal reward over HTTP (see ``reward_servers``)."""
