"""Every ORM model, imported in one place so Alembic sees one complete metadata."""

from service.accounts.models import Account, SyncRun
from service.auth.models import ApiKey
from service.budget.models import PelotonBudget
from service.db import Base
from service.deliveries.models import Delivery, DeliveryAttempt
from service.destinations.models import Destination
from service.events.models import Event, EventAttempt, EventDelivery
from service.web.models import UsedFormToken, WebSession
from service.workouts.models import Workout

__all__ = [
    "Account",
    "ApiKey",
    "Base",
    "Delivery",
    "DeliveryAttempt",
    "Destination",
    "Event",
    "EventAttempt",
    "EventDelivery",
    "PelotonBudget",
    "SyncRun",
    "UsedFormToken",
    "WebSession",
    "Workout",
]
