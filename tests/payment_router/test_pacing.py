"""payment_router.pacing: a day file's window of payments in flight to a core, from what the
online payments' router -> core times were in the last interval."""

from paymesh.streams import BatchingStream
from payment_router.pacing import MAX_WINDOW, MIN_WINDOW, ONLINE_TARGET_SECONDS, BatchPacer


def pacer() -> tuple[BatchPacer, BatchingStream]:
    # Never started: the pacer only sets its window.
    stream: BatchingStream = BatchingStream("core-cash.batch", open_call=lambda: None,  # type: ignore[arg-type, return-value]
                                            to_request=list, results_of=lambda response: [], key_of=str)
    return BatchPacer([stream]), stream


def test_with_nobody_waiting_a_file_goes_at_full_speed():
    paced, stream = pacer()
    assert paced.window == MAX_WINDOW and stream._max_in_flight == MAX_WINDOW
    assert paced.adjust() == MAX_WINDOW


def test_slow_online_payments_cut_the_window_to_a_quarter_down_to_the_floor_and_it_grows_back_slowly():
    paced, stream = pacer()
    windows = []
    for _ in range(6):
        for _ in range(9):
            paced.observe_online(ONLINE_TARGET_SECONDS / 2)
        paced.observe_online(ONLINE_TARGET_SECONDS * 3)
        paced.observe_online(ONLINE_TARGET_SECONDS * 3)  # the 90th percentile is over the target
        windows.append(paced.adjust())
    assert windows == [500, 125, 31, MIN_WINDOW, MIN_WINDOW, MIN_WINDOW], "a file never stops"
    paced.observe_online(ONLINE_TARGET_SECONDS / 2)
    assert paced.adjust() == MIN_WINDOW + MIN_WINDOW // 8 + MIN_WINDOW  # online is fast again: an eighth more
    assert stream._max_in_flight == paced.window
    grown = paced.window
    assert paced.adjust() == 2 * grown, "an interval with no online payment doubles it"
