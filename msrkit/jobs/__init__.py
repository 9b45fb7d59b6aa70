"""Many requests at once and the files they leave: batch ranking into a resumable JSONL journal,
the atomic writers, what a batch costs (tallied and predicted), the HTML report, ``prompts render``.
"""
