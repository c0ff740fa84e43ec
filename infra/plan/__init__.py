"""The planned stack as data: what the engine would register (model.py), what it costs a month (cost.py) and
every signal's path to a person (signal_paths.py). Read by the validation rules, the offline commands and the
policy pack alike; built on the config, below everything that plans or checks."""
