"""The platform's AWS emulator: moto server plus the few AWS Budgets and Glue calls moto 5.2.5 lacks.

moto keeps each budget notification's subscribers but answers DescribeSubscribersForNotification,
CreateSubscriber, DeleteSubscriber and UpdateBudget with NotImplementedError, so no budget could be
managed idempotently against it. Likewise it keeps Glue crawlers but has no UpdateCrawler, so a
crawler's schedule or targets could not be changed. Each handler below restores the AWS behaviour of
one call on the data moto already keeps. Nothing else of moto changes.

With ARGOEKS_EMULATOR_ACTION_LOG=FILE it also appends the IAM action of every call it answers
(`service:Action`, as moto's own access control names it) to FILE, one per line: what a run would need
permission for on AWS (docs/eks-iam-policy.json is checked against it).

Run as moto_server is run:  python argoeks_emulator.py -H 127.0.0.1 -p 4566
The unit tests install the same handlers with install().
"""

import json
import os
import threading

from moto.budgets.exceptions import DuplicateRecordException, NotFoundException
from moto.budgets.responses import BudgetsResponse
from moto.core.utils import unix_time, utcnow
from moto.glue.exceptions import CrawlerRunningException
from moto.glue.responses import GlueResponse


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


# UpdateCrawler request member -> attribute of moto's FakeCrawler. Members moto does not keep for a
# crawler (LakeFormationConfiguration, CatalogId) are ignored, as moto's CreateCrawler ignores them.
CRAWLER_FIELDS = {
    "Role": "role",
    "DatabaseName": "database_name",
    "Description": "description",
    "Targets": "targets",
    "Schedule": "schedule",
    "Classifiers": "classifiers",
    "TablePrefix": "table_prefix",
    "SchemaChangePolicy": "schema_change_policy",
    "RecrawlPolicy": "recrawl_policy",
    "LineageConfiguration": "lineage_configuration",
    "Configuration": "configuration",
    "CrawlerSecurityConfiguration": "crawler_security_configuration",
}


def update_crawler(self):
    """AWS: sets the members given in the request and keeps the others; an empty Schedule or
    Configuration removes it. An unknown crawler is an EntityNotFoundException, a running (or
    stopping) one a CrawlerRunningException."""
    request = json.loads(self.body)
    crawler = self.glue_backend.get_crawler(request.get("Name"))  # EntityNotFoundException when unknown
    if crawler.status != "READY":
        raise CrawlerRunningException(f"Crawler with name {crawler.name} is {crawler.status}; it cannot be updated")
    for member, attribute in CRAWLER_FIELDS.items():
        if member in request:
            value = request[member]
            if member in ("Schedule", "Configuration") and value == "":
                value = None
            setattr(crawler, attribute, value)
    crawler.last_updated = utcnow()
    crawler.version += 1
    return "{}"


HANDLERS = {
    "describe_subscribers_for_notification": describe_subscribers_for_notification,
    "create_subscriber": create_subscriber,
    "delete_subscriber": delete_subscriber,
    "update_budget": update_budget,
}
GLUE_HANDLERS = {
    "update_crawler": update_crawler,
}
# moto response class -> the handlers added to it
PATCHES = {BudgetsResponse: HANDLERS, GlueResponse: GLUE_HANDLERS}


def record_actions(path):
    """Append `service:Action` of every authorised call to path (moto checks each call there, before it runs)."""
    from moto.core.authorization import ActionAuthenticatorMixin

    authorize, lock = ActionAuthenticatorMixin._authenticate_and_authorize_action, threading.Lock()

    def recording(self, iam_request_cls, resource="*"):
        scope = self.headers.get("Authorization", "").split("Credential=", 1)[-1].split(",", 1)[0].split("/")
        if len(scope) > 3:
            with lock, open(path, "a") as log:
                log.write(f"{scope[3]}:{self._get_action()}\n")
        return authorize(self, iam_request_cls, resource)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = recording


def install():
    for response_class, handlers in PATCHES.items():
        for name, handler in handlers.items():
            setattr(response_class, name, handler)
    if os.environ.get("ARGOEKS_EMULATOR_ACTION_LOG"):
        record_actions(os.environ["ARGOEKS_EMULATOR_ACTION_LOG"])


if __name__ == "__main__":
    install()
    from moto.server import main

    main()
