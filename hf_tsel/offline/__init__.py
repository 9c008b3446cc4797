"""Everything that works without the Hub: packaged pretrained models, packaged datasets and the offline benchmarks."""
