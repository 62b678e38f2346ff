"""Service type stand-ins: LoadNode, UnloadNode, ListNodes with Request/Response classes."""


class _Service:
    class Request:
        def __init__(self, **kwargs: object) -> None:
            self.__dict__.update(kwargs)

    class Response:
        def __init__(self, **kwargs: object) -> None:
            self.__dict__.update(kwargs)


class LoadNode(_Service):
    """composition_interfaces/srv/LoadNode (stand-in: no type support, cannot be called)."""


class UnloadNode(_Service):
    """composition_interfaces/srv/UnloadNode (stand-in)."""


class ListNodes(_Service):
    """composition_interfaces/srv/ListNodes (stand-in)."""
