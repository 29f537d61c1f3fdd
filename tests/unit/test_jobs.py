"""One table of jobs: every task a worker registers is a `Job`, every `Job` has a task, a
queue of its own in `infra.routing`, and Celery routes it there."""

from __future__ import annotations

from domain.jobs import Job
from infra.routing import PUSH_QUEUES, QUEUE_OF, Queue


def test_every_task_is_a_job_and_every_job_a_task() -> None:
    from workers.app import app

    registered = {name for name in app.tasks if not name.startswith("celery.")}
    assert registered == {job.value for job in Job}


def test_every_job_has_its_queue_and_celery_routes_it_there() -> None:
    from workers.app import app

    assert set(QUEUE_OF) == set(Job)
    for job, queue in QUEUE_OF.items():
        route = app.amqp.router.route({}, job.value)
        assert route["queue"].name == queue.value, job
    assert {q.name for q in app.conf.task_queues} == {q.value for q in Queue}


def test_beat_schedules_jobs_only_and_pushes_wait_behind_nothing() -> None:
    from workers.app import app

    assert {entry["task"] for entry in app.conf.beat_schedule.values()} <= set(Job)
    assert PUSH_QUEUES[0] == Queue.NOTIFICATIONS
    assert QUEUE_OF[Job.DELIVER_PUSH] == Queue.NOTIFICATIONS
    assert QUEUE_OF[Job.DELIVER_PROMOTION] == Queue.PROMOTIONS
