"""The engine shared by the methods: latent edits, sample streams and reducers, streaming PCA,
forward-mode Jacobians, resumable jobs, shards, sample files and predictors."""
