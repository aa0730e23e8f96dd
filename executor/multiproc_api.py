"""Entry points of the multiprocess executors ('drizzle' and 'bsp'): `collect` and `start`.

They behave like `executor.api`'s (same arguments, same results, same
QueryHandle interface); the executor is picked by `config.executor`.
`explain_analyze` runs a bounded query and shows the stage plan with the
measured per-stage metrics.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from executor import kernels
from executor.api import SinkLike, _close_quietly, _prepare, resolve_sink
from executor.bsp import BspDriver
from executor.commits import dead_letter_router
from executor.driver import Driver, DrizzleDriver, build_driver
from executor.handle import QueryHandle, _as_execution_error
from executor.inline import CollectOutput, SinkOutput
from executor.metrics import render_progress
from executor.trace import recorder_for
from stream_dsl.catalog import Catalog
from stream_dsl.config import RunConfig
from stream_dsl.connectors.base import Sink
from stream_dsl.errors import DSLError, ExecutionError
from stream_dsl.plan import Plan

DRIVERS: dict[str, type[Driver]] = {"drizzle": DrizzleDriver, "bsp": BspDriver}


def _driver_class(config: RunConfig) -> type[Driver]:
    try:
        return DRIVERS[config.executor]
    except KeyError:
        raise DSLError(f"executor '{config.executor}' is not a multiprocess executor; "
                       f"choose one of {', '.join(DRIVERS)}") from None


def run_collect(plan: Plan, config: RunConfig,
                catalog: Catalog | None = None) -> tuple[pl.DataFrame, Driver, list[dict[str, Any]]]:
    """Run an (already optimized) plan to the end of its input; the result, the driver and the progress."""
    driver = build_driver(_driver_class(config), plan, config, CollectOutput, realtime=False)
    progress: list[dict[str, Any]] = []
    driver.dead_letter_router = dead_letter_router(driver.graph, catalog=catalog, use_default=False)
    try:
        driver.open(bounded=True)
    except BaseException:
        driver.close()
        raise
    try:
        driver.run(progress.append)
    except DSLError:
        raise
    except Exception as exc:
        raise ExecutionError(f"query failed: {kernels.error_text(exc)}") from exc
    finally:
        driver.close()
    return driver.result(), driver, progress


def collect(plan: Plan, config: RunConfig | None = None, catalog: Catalog | None = None) -> pl.DataFrame:
    """Run `plan` over bounded input on worker processes and return the result (see executor.api.collect)."""
    plan, config = _prepare(plan, config)
    return run_collect(plan, config, catalog)[0]


class MultiprocQueryHandle(QueryHandle):
    """A QueryHandle whose loop is a multiprocess driver (stop() cancels the running group)."""

    def __init__(self, driver: Driver, sink: Sink, name: str | None = None) -> None:
        super().__init__(driver, sink, name)  # type: ignore[arg-type]
        self.driver = driver

    def worker_pids(self) -> list[int]:
        return list(self.driver.worker_pids)

    @property
    def recoveries(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.driver.recoveries]

    @property
    def restored_checkpoint(self) -> dict[str, Any] | None:
        checkpointing = self.driver.checkpointing
        return None if checkpointing is None else checkpointing.restored_info()

    def _run(self) -> None:
        try:
            self.driver.run(self._record, self._stop.is_set, idle_sleep=True)
        except ExecutionError as exc:
            self._exception = exc
        except Exception as exc:
            self._exception = _as_execution_error(exc)
        finally:
            self.driver.close()
            try:
                self._sink.close()
            except Exception as exc:
                if self._exception is None:
                    self._exception = _as_execution_error(exc, "closing the sink")


def start(plan: Plan, sink: SinkLike = None, config: RunConfig | None = None,
          catalog: Catalog | None = None, *, name: str | None = None, trace: str | None = None) -> QueryHandle:
    """Start `plan` as a continuous query on worker processes (see executor.api.start)."""
    plan, config = _prepare(plan, config)
    recorder = recorder_for(trace, config)
    target = resolve_sink(sink, catalog)
    written = target if recorder is None else recorder.wrap(target)
    driver = build_driver(_driver_class(config), plan, config,
                          lambda schema, limit: SinkOutput(schema, limit, written), realtime=True)
    if recorder is not None:
        recorder.attach_driver(driver)
    try:
        driver.dead_letter_router = dead_letter_router(driver.graph, catalog=catalog, sink=target, query_name=name,
                                                       checkpoint_dir=config.checkpoint_dir)
        driver.open()
    except BaseException:
        driver.close()
        _close_quietly(target)
        raise
    return MultiprocQueryHandle(driver, written, name)._start()


def explain_analyze(plan: Plan, config: RunConfig | None = None, catalog: Catalog | None = None) -> str:
    """EXPLAIN ANALYZE on worker processes: the explain text, the inline executor's metrics section,
    then the scheduling metrics per stage (compute, scheduler delay, waiting for inputs, serialization).
    """
    from executor.api import render_metrics
    from optimizer.explain import explain

    config = config or RunConfig()
    result, driver, progress = run_collect(_prepare(plan, config)[0], config, catalog)
    header = (f"executor={config.executor} workers={config.workers} group_size={config.group_size} "
              f"driver_messages={len(driver.assignment_log)}")
    return "\n".join([explain(plan, config), "== Metrics ==", render_metrics(progress, result.height),
                      "== Scheduling ==", header, render_progress(progress)])
