from nitro_build import define_task
from nitro_build.runtime import Task, TaskEvent


def test_call_form_keeps_meta_and_function() -> None:
    def run(event: TaskEvent) -> str:
        return "ok"

    task = define_task(meta={"name": "db:migrate", "description": "Migrate"}, run=run)

    assert isinstance(task, Task)
    assert task.run is run
    assert task.name == "db:migrate"
    assert task.description == "Migrate"


def test_decorator_with_arguments() -> None:
    @define_task(description="Greets")
    async def greet(event: TaskEvent) -> str:
        return "hi"

    assert isinstance(greet, Task)
    assert greet.description == "Greets"
    assert greet.name is None


def test_bare_decorator() -> None:
    @define_task
    def plain(event: TaskEvent) -> int:
        return 1

    assert isinstance(plain, Task)
    assert plain.description == ""


def test_task_remembers_where_it_was_defined() -> None:
    task = define_task(run=lambda event: None)

    assert task.file == __file__
    assert task.line > 0
