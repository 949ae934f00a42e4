"""Helpers of scripts/cluster-test: several orgsvc instances on one MongoDB."""
