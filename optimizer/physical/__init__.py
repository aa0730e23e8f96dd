"""Physical planning: lowering a logical plan to the stage DAG the executors run."""
