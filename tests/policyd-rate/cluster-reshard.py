#!/usr/bin/python3
"""policyd-rate on a Redis Cluster while redis-cli --cluster reshard moves
the slots its users' counters live in: every request answered, the same
answers as one Redis gives the same requests (no count lost or doubled),
redirections followed (cluster.py has the rest)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402

cluster.main([cluster.reshard])
