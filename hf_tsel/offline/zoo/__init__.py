"""The zoo benchmark: small models trained here from offline data, ranked on offline target tasks (docs/groundtruth.md)."""
