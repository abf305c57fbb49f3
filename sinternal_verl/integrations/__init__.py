"""Adapters that let other trainers use the sinternal reward over HTTP (see ``sinternal_verl.server``)."""
