"""Adapters to the orchestrators people already run (docs/orchestration.md). Each module is
imported only inside its orchestrator: featurehub does not depend on any of them."""
