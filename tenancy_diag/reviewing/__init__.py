"""After the incident: the postmortem assembled from an incident's evidence bundles."""
