"""What a network learns and how it is scored: `base` (the Task interface, the age classification and
regression tasks, gender/race classification, target arrays from records), `age_heads` (the age-estimation
methods of the field as age heads: DLDL, mean–variance, SORD, OR-CNN, CORAL, CORN, unimodal) and `factory`
(`build_tasks`: Task objects from the `tasks` config group). Models never import this package: a model
sees each task as a `HeadSpec` (agebench.models.heads)."""
