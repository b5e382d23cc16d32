"""``streamguard enforce``: end killed streams on the media server.

Two steps, because encoders reconnect by themselves: the publisher is dropped
through the media server's API, and its re-publish is refused by the publish hook
this process serves. docs/enforcement.md has the set-up for each media server.
"""
