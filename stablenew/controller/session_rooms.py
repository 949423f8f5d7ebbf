"""How the Session opens each room after the first paint: its controller made and wired to
the others (the Session's lifetime and its queue are in session.py)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

if TYPE_CHECKING:
    from collections.abc import Iterable

    from stablenew.backends.types import Capabilities
    from stablenew.cluster.nodes import NodeConfig
    from stablenew.controller.app_controller import AppController
    from stablenew.controller.card_memory import CardMemory
    from stablenew.controller.catalog_controller import CatalogController
    from stablenew.controller.errors import ErrorInfo
    from stablenew.controller.funnel_controller import FunnelController
    from stablenew.controller.gallery_controller import GalleryController
    from stablenew.controller.learning_controller import LearningController
    from stablenew.controller.learning_ratings import LearningRatingBook
    from stablenew.controller.library_controller import LibraryController
    from stablenew.controller.nodes_controller import NodesController
    from stablenew.controller.pipeline_controller import PipelineController
    from stablenew.controller.queue_controller import PlanEntry, QueueController
    from stablenew.controller.randomizer_adapter import RandomizerAdapter
    from stablenew.controller.run_work import RunQueue
    from stablenew.controller.server_controller import ServerController
    from stablenew.controller.tasks import TaskOwner
    from stablenew.controller.taste_controller import TasteController
    from stablenew.controller.trending_controller import TrendingController
    from stablenew.pipeline.config import PipelineConfig
    from stablenew.pipeline.events import RunFinished
    from stablenew.pipeline.records import ImageRecord

log = logging.getLogger("stablenew.controller.session")


class SessionRooms(QObject):
    """The room builders of the Session (`_<room>()` for each name in `ROOMS`); mixed into it,
    so its attributes and the methods declared below are the Session's."""

    app: AppController
    server: ServerController
    pipeline: PipelineController
    gallery: GalleryController
    learning: LearningController | None
    library: LibraryController | None
    queue: QueueController | None
    nodes: NodesController | None
    catalog: CatalogController | None
    randomizer: RandomizerAdapter | None
    taste: TasteController | None
    trending: TrendingController | None
    funnel: FunnelController | None
    _rating_book: LearningRatingBook | None
    _rooms_pending: list[str]
    _unrecorded: list[ImageRecord]
    _closing: bool
    tasks: TaskOwner
    cards: CardMemory

    if TYPE_CHECKING:
        @property
        def cluster_enabled(self) -> bool: ...
        async def queue_for_run(self) -> RunQueue: ...
        def _open_room(self, name: str) -> None: ...
        def _forward_error(self, info: ErrorInfo | None) -> None: ...
        def _queue_running_changed(self, running: bool) -> None: ...
        def _work_wanted(self) -> None: ...
        def _nodes_changed(self) -> None: ...
        def queue_trending(self, items: Iterable[PlanEntry], *, name: str) -> bool: ...

    def _learning(self) -> LearningController:
        from stablenew.controller.learning_controller import LearningController

        # A learning run is a queue job, interactive like Run (one path for work).
        learning = LearningController(self.app.paths.database_file, run_queue=self.queue_for_run,
                                      output_dir=lambda: self.app.output_dir,
                                      base_config=self.pipeline.current_config, app=self.app,
                                      parent=self)
        # Every saved image becomes a learning record; ratings from the gallery go to its store,
        # and ratings made in the learning room show in the gallery.
        self.pipeline.add_record_hook(learning.on_image_record)
        unrecorded, self._unrecorded = self._unrecorded, []
        for record in unrecorded:
            learning.on_image_record(record)
        learning.record_changed.connect(self.gallery.show_record)
        self._rating_book = learning.rating_book()
        # Where an earlier StableNew kept ratings made before this room opened (read off-thread).
        self.gallery.hand_over_rating_file(self.app.paths.data_dir / "ratings.json")
        from stablenew.controller.taste_controller import TasteController

        self.taste = TasteController(self.app.paths.database_file, learning=learning, parent=self)
        self.gallery.actions.choice_book = self.taste  # the gallery's compare picks
        return learning

    def _learning_ratings(self) -> LearningRatingBook | None:
        """The learning room's rating book for the gallery: the room opens now if a rating
        comes before it did (the rating is never lost); None if it could not open."""
        if self.learning is None and "learning" in self._rooms_pending and not self._closing:
            self._rooms_pending.remove("learning")
            self._open_room("learning")
        return self._rating_book if self.learning is not None else None

    def _library(self) -> LibraryController:
        from stablenew.controller.library_controller import LibraryController

        library = LibraryController(app=self.app, parent=self)
        library.set_current_config_provider(self.pipeline.current_config)
        library.config_applied.connect(self.pipeline.load_config)
        library.pack_actions.pack_run_requested.connect(self.pipeline.run_plan)
        library.message_changed.connect(self.pipeline.message_changed)
        library.error_changed.connect(self._forward_error)
        return library

    def _queue(self) -> QueueController:
        from stablenew.controller.queue_controller import QueueController

        queue = QueueController(db_path=self.app.paths.database_file, output_root=self.app.output_dir,
                                parent=self)
        queue.error_changed.connect(self._forward_error)
        queue.batch_finished.connect(self.pipeline.message_changed)
        queue.running_changed.connect(self._queue_running_changed)
        queue.work_wanted.connect(self._work_wanted)
        return queue

    def _randomizer(self) -> RandomizerAdapter:
        from stablenew.controller.randomizer_adapter import RandomizerAdapter

        adapter = RandomizerAdapter(app=self.app, parent=self)
        self.pipeline.set_plan_provider(adapter.plan_for_run)
        # The count follows the cards; each key only marks it stale (the config is built later,
        # on the adapter's worker).
        adapter.follow_cards(self.pipeline.config_snapshot)
        self.pipeline.cards_changed.connect(adapter.cards_changed)
        if self.library is not None:
            # A pack runs every prompt times the plan the randomizer panel has set up.
            self.library.pack_actions.set_randomizer(
                lambda: adapter.spec if adapter.enabled else None, lambda: adapter.wildcards_dir)
            # An applied profile biases every run's wildcards, not only pack runs.
            self.library.preset_actions.bias_changed.connect(
                lambda bias: adapter.set_wildcard_weights(
                    {name: dict(weights) for name, weights in bias.wildcard_weights.items()}))
        self.pipeline.run_finished.connect(lambda event: self._measured_speed(adapter, event))
        self._share_library_loras(self.catalog, adapter)
        return adapter

    def _measured_speed(self, adapter: RandomizerAdapter, event: RunFinished | None) -> None:
        """The randomizer's time estimate for large plans: the node's measured speed applied to
        the cards' settings (steps and size), as the queue's estimates have it; the last Run's
        time per image only while nothing is measured."""
        if event is None or not event.images_saved:
            return
        seconds = None
        if self.queue is not None:
            node = None if self.cluster_enabled else self.server.node_name  # None: every node
            seconds = self.queue.estimates.seconds_per_image(self.pipeline.current_config(), node)
        adapter.pace.set_seconds_per_image(seconds or event.seconds / event.images_saved)

    def _nodes(self) -> NodesController:
        from stablenew.controller.nodes_controller import NodesController

        nodes = NodesController(nodes_file=self.app.paths.nodes_file,
                                db_path=self.app.paths.database_file, parent=self,
                                settings_server=self._settings_server_node)
        nodes.error_changed.connect(self._forward_error)
        nodes.nodes_changed.connect(self._nodes_changed)
        nodes.nodes_changed.connect(lambda: self._share_node_loras(nodes, self.catalog))
        return nodes

    def _settings_server_node(self) -> NodeConfig | None:
        """The server in Settings as a node, named as the single-server queue names it
        ("127.0.0.1:7860"), so the speed learned of it there plans its share of the cluster."""
        from pydantic import SecretStr

        from stablenew.cluster.nodes import NodeConfig

        settings = self.app.settings
        name = settings.server_url.split("://", 1)[-1].rstrip("/")[:64] or "server"
        try:
            return NodeConfig(name=name, url=settings.server_url, kind=settings.server_kind.value,
                              username=settings.username,
                              password=SecretStr(settings.password))
        except ValueError as exc:  # an address the node registry cannot take
            log.info("nodes: the settings server %s is not a valid node: %s",
                     settings.server_url, exc)
            return None

    @staticmethod
    def _share_node_loras(nodes: NodesController | None, catalog: CatalogController | None
                          ) -> None:
        """Each node's LoRA list (from its probe) marks where a LoRA is available in Models."""
        if nodes is None or catalog is None:
            return
        for name, loras in nodes.lora_lists().items():
            catalog.set_node_loras(name, loras)

    @staticmethod
    def _share_library_loras(catalog: CatalogController | None,
                             randomizer: RandomizerAdapter | None) -> None:
        """The Models panel's pick feeds the randomizer's "LoRA from library" axis, as plain
        (name, weight) pairs: the two rooms never import each other."""
        if catalog is None or randomizer is None:
            return
        catalog.library_loras_changed.connect(randomizer.set_library_loras)
        randomizer.set_library_loras(catalog.library_loras())

    def _start_learning_run(self, config: PipelineConfig, parameter: str,
                            values: list[float | str]) -> str:
        """"Try this LoRA" or a swatch batch from Models: a learning run; "" when it started,
        else why not."""
        learning = self.learning
        if learning is None:
            return "The learning room is still opening; try again in a moment."
        if learning.runs.start_learning_run(parameter, values, base=config):
            return ""
        error = learning.error
        return error.message if error is not None else "The learning run could not start."

    def _catalog(self) -> CatalogController:
        from stablenew.controller.catalog_controller import CatalogController

        catalog = CatalogController(self.app.paths.data_dir / "catalog.db", parent=self)
        catalog.set_prompt_target(self.pipeline.current_config, self.pipeline.load_config)
        catalog.set_learning_run_starter(self._start_learning_run)
        catalog.use_app_settings(self.app)
        self._share_node_loras(self.nodes, catalog)
        self._share_library_loras(catalog, self.randomizer)
        catalog.error_changed.connect(self._forward_error)
        # A checkpoint's family from its header beats its name (card, scheduler, backends).
        self.pipeline.base_model_of = lambda name: catalog.catalog.checkpoint_base(name).value
        catalog.entries_changed.connect(self.pipeline.base_models_changed)

        def server_listed(caps: Capabilities | None) -> None:
            # The window's server: its LoRA list marks what is available where Run goes.
            if caps is not None:
                node = self.server.node_name
                catalog.set_node_loras(node, caps.loras)
                catalog.set_current_node(node)
                catalog.list_server(node, self.server.url, str(caps.kind), caps.checkpoints,
                                    auth=self.server.auth)

        self.server.capabilities_changed.connect(server_listed)
        server_listed(self.server.capabilities)
        return catalog

    def _funnel(self) -> FunnelController:
        from stablenew.controller.funnel_controller import FunnelController

        if self.queue is None:
            raise RuntimeError("the queue did not open, and every funnel step is a queue job")
        # Its steps start the queue as Add to queue does (on the cluster when there is one).
        funnel = FunnelController(self.app.paths.data_dir, self.queue,
                                  base_config=self.pipeline.current_config,
                                  output_root=lambda: self.app.output_dir,
                                  start_queue=self._work_wanted, parent=self)
        funnel.message_changed.connect(self.pipeline.message_changed)  # said in the window
        from stablenew.controller.start_images import clean_start_images

        # The pictures copied for init images and funnel stages that nothing needs any more.
        self.tasks.spawn(clean_start_images(self.app.paths, self.cards.file),
                         name="clean-start-images")
        return funnel

    def _trending(self) -> TrendingController:
        from stablenew.controller.trending_room import open_trending

        return open_trending(self)
