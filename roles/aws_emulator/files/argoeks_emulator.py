"""The platform's AWS emulator: moto server plus the few AWS Budgets calls moto 5.2.5 lacks.

moto keeps each budget notification's subscribers but answers DescribeSubscribersForNotification,
CreateSubscriber, DeleteSubscriber and UpdateBudget with NotImplementedError, so no budget could be
managed idempotently against it. Each handler below restores the AWS behaviour of one call on the
data moto already keeps. Nothing else of moto changes.

Run as moto_server is run:  python argoeks_emulator.py -H 127.0.0.1 -p 4566
The unit tests install the same handlers with install().
"""

import json

from moto.budgets.exceptions import DuplicateRecordException, NotFoundException
from moto.budgets.responses import BudgetsResponse
from moto.core.utils import unix_time


def _budget(response, name_param="BudgetName"):
    budgets = response.backend.budgets[response._get_param("AccountId")]
    budget = budgets.get(response._get_param(name_param))
    if budget is None:
        raise NotFoundException(f"Unable to get budget: {response._get_param(name_param)} - the budget doesn't exist.")
    return budget


def _notification(response):
    """The notification named in the request, matched on all its fields as AWS does."""
    wanted = response._get_param("Notification")
    for notification in _budget(response).notifications:
        if notification.details == wanted:
            return notification
    raise NotFoundException("Unable to find the notification for the budget")


def describe_subscribers_for_notification(self):
    """AWS: lists the subscribers of one notification."""
    return json.dumps({"Subscribers": _notification(self).subscribers})


def create_subscriber(self):
    """AWS: adds a subscriber; an existing one is a DuplicateRecordException."""
    notification, subscriber = _notification(self), self._get_param("Subscriber")
    if subscriber in notification.subscribers:
        raise DuplicateRecordException("subscriber", subscriber["Address"])
    notification.subscribers.append(subscriber)
    return "{}"


def delete_subscriber(self):
    """AWS: removes a subscriber from a notification."""
    notification, subscriber = _notification(self), self._get_param("Subscriber")
    notification.subscribers = [s for s in notification.subscribers if s != subscriber]
    return "{}"


def update_budget(self):
    """AWS: replaces the budget's definition with NewBudget (same name), keeping its notifications."""
    new = self._get_param("NewBudget")
    budgets = self.backend.budgets[self._get_param("AccountId")]
    budget = budgets.get(new["BudgetName"])
    if budget is None:
        raise NotFoundException(f"Unable to update budget: {new['BudgetName']} - the budget doesn't exist.")
    new.setdefault("TimePeriod", budget.budget.get("TimePeriod"))
    new["LastUpdatedTime"] = unix_time()
    budget.budget = new
    return "{}"


HANDLERS = {
    "describe_subscribers_for_notification": describe_subscribers_for_notification,
    "create_subscriber": create_subscriber,
    "delete_subscriber": delete_subscriber,
    "update_budget": update_budget,
}


def install():
    for name, handler in HANDLERS.items():
        setattr(BudgetsResponse, name, handler)


if __name__ == "__main__":
    install()
    from moto.server import main

    main()
