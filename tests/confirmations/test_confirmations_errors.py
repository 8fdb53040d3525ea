"""Bad input gets a clear status with a reason: unknown consumer, cursor beyond the
end, malformed filters and names; only channels subscribe."""

import grpc
import pytest

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as pb
from bank.confirmations.v1.confirmations_pb2 import ConfirmationFilter
from confirmations import client
from paymesh.errors import error_info
from tests.confirmations.support import ATM, OPERATOR, ROUTER, STORE, channel, serving

Start = pb.StartPosition


async def _subscribe_error(service, request) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.Subscribe(request).read()
    return raised.value


async def _unary_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def test_bad_subscriptions_and_acknowledgements_get_clear_statuses(settings):
    async with serving(settings) as (address, _):
        async with channel(address, settings, ROUTER) as router:
            await client.publish(client.stub(router), [client.confirmation("p1", types_pb2.CHANNEL_ATM)])
        async with channel(address, settings, ATM) as atm:
            service = client.stub(atm)
            unknown = await _subscribe_error(service, pb.SubscribeRequest(
                consumer_name="nobody", start_position=Start.START_POSITION_CONSUMER))
            beyond = await _subscribe_error(service, pb.SubscribeRequest(
                start_position=Start.START_POSITION_AFTER_SEQUENCE, after_sequence=2))
            bad_filter = await _subscribe_error(service, pb.SubscribeRequest(filter=ConfirmationFilter(
                loan_types=[types_pb2.LOAN_TYPE_UNSPECIFIED, 77], statuses=[types_pb2.PAYMENT_STATUS_ACCEPTED])))
            bad_name = await _subscribe_error(service, pb.SubscribeRequest(consumer_name="Bad Name!"))
            no_name = await _subscribe_error(service, pb.SubscribeRequest(start_position=Start.START_POSITION_CONSUMER))
            bad_start = await _subscribe_error(service, pb.SubscribeRequest(start_position=9))
            ack_unknown = await _unary_error(service.AcknowledgeConfirmations(
                pb.AcknowledgeConfirmationsRequest(consumer_name="nobody", sequence=1)))
            ack_beyond = await _unary_error(service.AcknowledgeConfirmations(
                pb.AcknowledgeConfirmationsRequest(consumer_name="nobody", sequence=99)))
        async with channel(address, settings, OPERATOR) as operator:
            not_a_channel = await _subscribe_error(client.stub(operator), pb.SubscribeRequest())

    assert (unknown.code(), error_info(unknown).reason) == (grpc.StatusCode.NOT_FOUND, "CONSUMER_NOT_FOUND")
    assert "nobody" in unknown.details()
    assert (beyond.code(), error_info(beyond).reason) == (grpc.StatusCode.OUT_OF_RANGE, "CURSOR_OUT_OF_RANGE")
    assert error_info(beyond).metadata["head_sequence"] == "1"
    assert (bad_filter.code(), error_info(bad_filter).reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    assert "filter.loan_types[1]" in str(bad_filter.trailing_metadata())
    for error in (bad_name, no_name, bad_start):
        assert (error.code(), error_info(error).reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    assert (ack_unknown.code(), error_info(ack_unknown).reason) == (grpc.StatusCode.NOT_FOUND, "CONSUMER_NOT_FOUND")
    assert (ack_beyond.code(), error_info(ack_beyond).reason) == (grpc.StatusCode.OUT_OF_RANGE,
                                                                 "CURSOR_OUT_OF_RANGE")
    assert not_a_channel.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_consumer_name_belongs_to_its_channel(settings):
    async with serving(settings) as (address, _):
        async with channel(address, settings, ATM) as atm:
            created = client.stub(atm).Subscribe(pb.SubscribeRequest(
                consumer_name="shared-name", start_position=Start.START_POSITION_BEGINNING))
            first = await created.read()  # a heartbeat: the consumer exists by the time anything is sent
            created.cancel()
            acked = await client.stub(atm).AcknowledgeConfirmations(
                pb.AcknowledgeConfirmationsRequest(consumer_name="shared-name", sequence=0))
        async with channel(address, settings, STORE) as store:
            subscribe = await _subscribe_error(client.stub(store), pb.SubscribeRequest(consumer_name="shared-name"))
            acknowledge = await _unary_error(client.stub(store).AcknowledgeConfirmations(
                pb.AcknowledgeConfirmationsRequest(consumer_name="shared-name", sequence=0)))
    assert first.WhichOneof("event") == "heartbeat" and acked.consumer_name == "shared-name"
    for error in (subscribe, acknowledge):
        assert (error.code(), error_info(error).reason) == (grpc.StatusCode.NOT_FOUND, "CONSUMER_NOT_FOUND")
