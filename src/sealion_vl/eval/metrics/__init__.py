"""Scorers: each module's ``score(items, responses, *, lang, ...) -> TaskScore`` follows
SEA-HELM's rules for one kind of task (multiple choice, SEA-IFEval, RefCLIPScore, ...)."""
