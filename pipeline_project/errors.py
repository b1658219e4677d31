"""Domain errors raised by services. Plain Python: views turn them into messages and the API
into HTTP errors (see pipeline_project.api.exception_handler)."""


class DomainError(Exception):
    """Bad input or a request the domain refuses. HTTP 400."""

    status_code = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(DomainError):
    """No such object (or not one the actor may see). HTTP 404."""

    status_code = 404


class RoleRequired(DomainError):
    """The actor lacks the role the action needs. HTTP 403."""

    status_code = 403


class IllegalTransition(DomainError):
    """The object is not in a state that allows the action (or someone got there first). HTTP 409."""

    status_code = 409


class Conflict(DomainError):
    """The action collides with existing data. HTTP 409."""

    status_code = 409
