"""The SuiteQL sensor in poke and deferrable mode, and its trigger, against the emulator."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_provider_netsuite.core.client import NetSuiteClient
from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.sensors.suiteql import NetSuiteSuiteQLSensor
from airflow_provider_netsuite.triggers.suiteql import NetSuiteSuiteQLTrigger

pytestmark = pytest.mark.integration

BY_PREFIX = "SELECT id FROM customer WHERE externalid LIKE ?"
COUNT_BY_PREFIX = "SELECT COUNT(*) AS n FROM customer WHERE externalid LIKE ?"


@pytest.fixture
def client(netsuite_extra):
    with NetSuiteClient(ConnectionConfig.from_extra(netsuite_extra)) as instance:
        yield instance


@pytest.fixture
def prefix() -> str:
    """An external ID prefix no other test uses, so the condition starts false."""
    return f"SENSOR-{uuid.uuid4().hex[:12]}-"


def add_customer(client: NetSuiteClient, external_id: str) -> None:
    """Create a customer through NetSuite's record service (upsert by external ID)."""
    client.request(
        "PUT", f"/services/rest/record/v1/customer/eid:{external_id}", json={"companyName": external_id}
    )


def test_poke_is_false_until_enough_rows_exist(emulator, airflow_conn_env, client, prefix):
    sensor = NetSuiteSuiteQLSensor(task_id="wait", query=BY_PREFIX, query_params=[f"{prefix}%"], min_rows=2)

    first = sensor.poke({})
    add_customer(client, prefix + "1")
    second = sensor.poke({})
    add_customer(client, prefix + "2")
    third = sensor.poke({})

    assert (bool(first), first.xcom_value) == (False, 0)
    assert (bool(second), second.xcom_value) == (False, 1)
    assert (bool(third), third.xcom_value) == (True, 2)


def test_count_mode_waits_for_the_threshold(emulator, airflow_conn_env, client, prefix):
    sensor = NetSuiteSuiteQLSensor(
        task_id="wait", query=COUNT_BY_PREFIX, query_params=[f"{prefix}%"], count_column="N", threshold=1
    )

    before = sensor.poke({})
    add_customer(client, prefix + "1")
    after = sensor.poke({})

    assert (bool(before), before.xcom_value) == (False, 0)
    assert (bool(after), after.xcom_value) == (True, 1)


def test_count_mode_needs_a_threshold_and_an_existing_column(emulator, airflow_conn_env):
    with pytest.raises(ValueError, match="threshold"):
        NetSuiteSuiteQLSensor(task_id="wait", query=COUNT_BY_PREFIX, count_column="n")
    sensor = NetSuiteSuiteQLSensor(
        task_id="wait", query="SELECT id FROM customer", count_column="n", threshold=1
    )
    with pytest.raises(ValueError, match="not in the result"):
        sensor.poke({})


def test_deferrable_sensor_returns_at_once_when_the_condition_already_holds(emulator, airflow_conn_env):
    sensor = NetSuiteSuiteQLSensor(task_id="wait", query="SELECT id FROM customer", deferrable=True)

    assert sensor.execute({}) == len(emulator.query_db("SELECT id FROM customer"))


def test_deferrable_sensor_defers_with_a_json_safe_trigger(
    emulator, airflow_conn_env, netsuite_extra, prefix
):
    sensor = NetSuiteSuiteQLSensor(
        task_id="wait",
        query=COUNT_BY_PREFIX,
        query_params=[f"{prefix}%"],
        count_column="n",
        threshold=3,
        deferrable=True,
        poke_interval=7,
        timeout=600,
    )

    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})

    trigger = deferred.value.trigger
    assert deferred.value.method_name == "execute_complete"
    classpath, kwargs = trigger.serialize()
    text = json.dumps(kwargs)
    assert classpath == "airflow_provider_netsuite.triggers.suiteql.NetSuiteSuiteQLTrigger"
    assert netsuite_extra["private_key"].splitlines()[1] not in text
    assert "private_key" not in text
    module, _, name = classpath.rpartition(".")
    recreated = getattr(__import__(module, fromlist=[name]), name)(**json.loads(text))
    assert recreated == trigger
    assert recreated.serialize() == trigger.serialize()
    assert kwargs["threshold"] == 3
    assert kwargs["poke_interval"] == 7
    assert kwargs["netsuite_conn_id"] == "netsuite_default"
    assert 590 < kwargs["deadline"] - time.time() <= 600


async def _first_event(trigger: NetSuiteSuiteQLTrigger):
    async for event in trigger.run():
        return event
    return None


def test_trigger_fires_when_records_arrive(emulator, airflow_conn_env, client, prefix):
    trigger = NetSuiteSuiteQLTrigger(query=BY_PREFIX, query_params=[f"{prefix}%"], poke_interval=0.2)

    async def scenario():
        waiting = asyncio.create_task(_first_event(trigger))
        await asyncio.sleep(1.0)
        fired_early = waiting.done()
        await asyncio.to_thread(add_customer, client, prefix + "1")
        return fired_early, await asyncio.wait_for(waiting, timeout=30)

    fired_early, event = asyncio.run(scenario())

    assert not fired_early
    assert event.payload == {"status": "success", "rows": 1}


def test_trigger_does_not_block_the_event_loop(monkeypatch):
    trigger = NetSuiteSuiteQLTrigger(query="SELECT id FROM customer", poke_interval=0.01)
    calls = []

    def slow_check():
        calls.append(1)
        time.sleep(0.4)  # a slow NetSuite answer
        return len(calls) >= 2, len(calls)

    monkeypatch.setattr(trigger, "_check", slow_check)

    async def scenario():
        ticks = []

        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.02)

        ticking = asyncio.create_task(ticker())
        event = await _first_event(trigger)
        ticking.cancel()
        return event, ticks

    event, ticks = asyncio.run(scenario())

    assert event.payload == {"status": "success", "rows": 2}
    assert len(ticks) > 20
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.3


def test_trigger_reports_a_failed_check_and_a_timeout(emulator, airflow_conn_env, prefix):
    broken = NetSuiteSuiteQLTrigger(query="SELECT nosuchcolumn FROM customer")
    late = NetSuiteSuiteQLTrigger(
        query=BY_PREFIX, query_params=[f"{prefix}%"], poke_interval=0.1, deadline=time.time() + 0.5
    )

    error = asyncio.run(_first_event(broken)).payload
    timeout = asyncio.run(_first_event(late)).payload

    assert error["status"] == "error"
    assert "nosuchcolumn" in error["message"].lower()
    assert timeout["status"] == "timeout"
    assert timeout["rows"] == 0


def test_execute_complete_returns_the_value_or_raises():
    sensor = NetSuiteSuiteQLSensor(task_id="wait", query=BY_PREFIX)
    soft = NetSuiteSuiteQLSensor(task_id="soft", query=BY_PREFIX, soft_fail=True)

    assert sensor.execute_complete({}, {"status": "success", "rows": 4}) == 4
    with pytest.raises(AirflowException, match="boom"):
        sensor.execute_complete({}, {"status": "error", "message": "boom"})
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute_complete({}, {"status": "timeout", "rows": 0})
    with pytest.raises(AirflowSkipException):
        soft.execute_complete({}, {"status": "timeout", "rows": 0})
