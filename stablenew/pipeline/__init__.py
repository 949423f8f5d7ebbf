"""The pipeline room: PipelineConfig, the stage runner, cancel tokens, events and outputs."""
