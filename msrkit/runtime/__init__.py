"""What one request runs through: ``run()`` (the pipeline), its deadline, the meter that counts
every LLM call, the prompt templates, and a model's answer bounded before it is parsed.
"""
