"""The webhook RPCs of ConfirmationService: a channel manages only its own endpoints."""

import time
import uuid

import grpc
from google.protobuf import timestamp_pb2

from bank.common.v1 import errors_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as pb, confirmations_pb2
from confirmations import webhook_store, webhooks
from confirmations.channels import channel_of
from paymesh.errors import Refused, abort
from paymesh.tls import peer_identity

MAX_DESCRIPTION = 256
MAX_BATCH_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_OVERLAP_SECONDS = 7 * 24 * 3600
DEFAULT_OVERLAP_SECONDS = 24 * 3600


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromNanoseconds(int(seconds * 1e9))
    return value


def _endpoint(row, with_secret: bool) -> confirmations_pb2.WebhookEndpoint:
    endpoint_id, url, description, secret, create_time, max_batch_size = row
    return confirmations_pb2.WebhookEndpoint(
        endpoint_id=endpoint_id, url=url, description=description, signing_secret=secret if with_secret else "",
        create_time=_timestamp(create_time), max_batch_size=max_batch_size,
    )


def _backlog(pending: int, oldest_body: bytes | None, lane: webhooks.Lane | None) -> confirmations_pb2.WebhookBacklog:
    backlog = confirmations_pb2.WebhookBacklog(pending_count=pending)
    if oldest_body is not None:
        oldest = confirmations_pb2.Confirmation.FromString(oldest_body)
        if oldest.HasField("result_time"):
            backlog.oldest_pending_time.CopyFrom(oldest.result_time)
    if lane is not None:  # (none yet for an endpoint made in the last second)
        backlog.circuit_state = lane.breaker.state
        if lane.breaker.state == webhooks.OPEN:
            backlog.retry_time.CopyFrom(_timestamp(lane.breaker.retry_at))
        backlog.window, backlog.in_flight = lane.window.size, lane.in_flight
    return backlog


async def _endpoint_not_found(context, endpoint_id: str):
    await abort(context, grpc.StatusCode.NOT_FOUND, f"no webhook endpoint {endpoint_id!r} for this channel",
                errors_pb2.ERROR_REASON_ENDPOINT_NOT_FOUND)


class WebhookRpcs:
    """Mixed into ConfirmationService, which provides self.store, self.settings and self.dispatcher."""

    async def CreateWebhookEndpoint(self, request, context):
        channel = channel_of(peer_identity(context))
        violations = []
        if not 0 < len(request.request_id) <= 128:
            violations.append(("request_id", "must be 1 to 128 characters (the idempotency key of this create)"))
        if len(request.description) > MAX_DESCRIPTION:
            violations.append(("description", f"must be at most {MAX_DESCRIPTION} characters"))
        if not 0 <= request.max_batch_size <= MAX_BATCH_SIZE:
            violations.append(("max_batch_size", f"must be 0 to {MAX_BATCH_SIZE} (0 or 1: one confirmation a POST)"))
        max_batch_size = max(1, request.max_batch_size)
        problem = self.dispatcher.allowlist.url_problem(request.url)
        if problem:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"the endpoint URL {problem}",
                        errors_pb2.ERROR_REASON_ENDPOINT_URL_INVALID, violations=[("url", problem), *violations])
        if violations:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "the endpoint request is malformed",
                        errors_pb2.ERROR_REASON_INVALID_FIELD, violations=violations)
        try:
            row, state = await self.store.transaction(
                webhook_store.create_endpoint, channel, request.request_id, f"we_{uuid.uuid4().hex}", request.url,
                request.description, webhooks.new_secret(), max_batch_size, self.settings.max_webhook_endpoints,
            )
        except Refused as refused:
            await refused.abort(context)
        if state == webhook_store.DELETED:
            # A deleted endpoint stays deleted: a late retry of its create must not bring it (or its secret) back.
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"this request_id created endpoint {row[0]},"
                        " which was deleted; create a new endpoint with a new request_id",
                        errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED, metadata={"endpoint_id": row[0]})
        if state == webhook_store.EXISTING and (row[1], row[2], row[5]) != (request.url, request.description,
                                                                           max_batch_size):
            await abort(context, grpc.StatusCode.ALREADY_EXISTS, "this request_id already created a different"
                        " endpoint", errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
                        metadata={"endpoint_id": row[0]})
        self.dispatcher.wake()  # (its lane starts now, not at the dispatcher's next look)
        # The secret is shown once, by the create that made it: a retry gets the same endpoint without it (it
        # may have been rotated since); a caller that lost it rotates it.
        return pb.CreateWebhookEndpointResponse(endpoint=_endpoint(row, with_secret=state == webhook_store.CREATED))

    async def ListWebhookEndpoints(self, request, context):
        rows = await self.store.run(webhook_store.list_endpoints, channel_of(peer_identity(context)))
        backlogs = await self.store.run(webhook_store.backlogs, [row[0] for row in rows])
        endpoints = []
        for row in rows:
            endpoint = _endpoint(row, with_secret=False)
            endpoint.backlog.CopyFrom(_backlog(*backlogs[row[0]], self.dispatcher.lane(row[0])))
            endpoints.append(endpoint)
        return pb.ListWebhookEndpointsResponse(endpoints=endpoints)

    async def DeleteWebhookEndpoint(self, request, context):
        channel = channel_of(peer_identity(context))
        if not await self.store.transaction(webhook_store.delete_endpoint, channel, request.endpoint_id):
            await _endpoint_not_found(context, request.endpoint_id)
        self.dispatcher.deleted(request.endpoint_id)
        return pb.DeleteWebhookEndpointResponse()

    async def RotateWebhookSecret(self, request, context):
        channel = channel_of(peer_identity(context))
        # Unset: a day for the receiver to switch; 0: the old secret ends now (it leaked, say).
        overlap = request.overlap_seconds if request.HasField("overlap_seconds") else DEFAULT_OVERLAP_SECONDS
        if not 0 <= overlap <= MAX_OVERLAP_SECONDS:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "overlap_seconds is out of range",
                        errors_pb2.ERROR_REASON_INVALID_FIELD,
                        violations=[("overlap_seconds", f"must be 0 to {MAX_OVERLAP_SECONDS} (7 days)")])
        now = time.time()
        expire_time = now + overlap
        row = await self.store.transaction(webhook_store.rotate_secret, channel, request.endpoint_id,
                                           webhooks.new_secret(), expire_time, now)
        if row is None:  # another channel's endpoint is as unknown as one that never was
            await _endpoint_not_found(context, request.endpoint_id)
        return pb.RotateWebhookSecretResponse(endpoint=_endpoint(row, with_secret=True),
                                              previous_secret_expire_time=_timestamp(expire_time))

    async def ReplayWebhookDeliveries(self, request, context):
        channel = channel_of(peer_identity(context))
        count = await self.store.transaction(webhook_store.replay, channel, request.endpoint_id)
        if count is None:
            await _endpoint_not_found(context, request.endpoint_id)
        self.dispatcher.wake()
        return pb.ReplayWebhookDeliveriesResponse(replayed_count=count)

    async def ListWebhookDeliveries(self, request, context):
        channel = channel_of(peer_identity(context))
        if request.page_size < 0 or request.status not in confirmations_pb2.DeliveryStatus.values():
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "page_size or status is out of range",
                        errors_pb2.ERROR_REASON_INVALID_FIELD,
                        violations=[("page_size", "must not be negative"), ("status", "must be a DeliveryStatus")])
        limit = min(request.page_size or 100, MAX_PAGE_SIZE)
        rows = await self.store.run(webhook_store.list_deliveries, channel, request.endpoint_id, request.status, limit)
        if rows is None:
            await _endpoint_not_found(context, request.endpoint_id)
        return pb.ListWebhookDeliveriesResponse(deliveries=[
            confirmations_pb2.WebhookDelivery(endpoint_id=e, sequence=s, payment_id=p, status=st, attempts=a,
                                              last_error=err, next_attempt_time=_timestamp(n))
            for e, s, p, st, a, err, n in rows
        ])
