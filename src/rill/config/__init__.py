"""Settings and the files that configure rill: config.toml, paths, the model cache."""
