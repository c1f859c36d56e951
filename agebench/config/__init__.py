"""From the command line to a checked run config, before any fold or trial starts.

Members: `compose` (Hydra composes conf/ with the command line's overrides; Hydra's errors as one line;
override quoting), `validation` (every value against one typed schema), `preflight` (launcher, device and
dataset checks before Hydra launches anything), `locate` (a config's `_target_` address → the Python
object, a typo as one line) and `recipe_models` (a recipe's variants against the user's `model=` choice).
"""
