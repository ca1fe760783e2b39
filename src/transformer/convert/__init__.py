"""Converters from Hugging Face checkpoints into the project's models and run directories:
`bert` (`BertForMaskedLM` -> `transformer.models.BERT`) and `gpt2` (`GPT2LMHeadModel` ->
`transformer.models.GPT` + GPT-2's byte-level BPE). They sit above `models/` because they
write run directories (checkpoints, configs, tokenizers), which models never import."""
