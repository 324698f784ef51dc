"""The no-double check of bench/cluster/faults.py (b_double) on op histories,
without a cluster: two sessions answered for one (lobby, bot, nick) need a
leave of one of them between their answers, in some order the ops' times
allow. The first two histories are from fault runs (times in seconds since
the run's start, from their ops.jsonl): a join on an instance stopped by
pause_instance just after etcd answered it, answered 6 s later with the
session it read, which another client had left meanwhile and another join
had replaced. That is not a double, and the check used to say it was."""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench", "cluster"))

import faults  # noqa: E402

LOBBY = "a68d75bf-0050-4c8f-b030-c435bb9d4770"


def join(op_id, session_id, *tries, bot="echo", nick="n5"):
    """A join op as the workload records it; tries are (start, end, status)."""
    status = tries[-1][2]
    return {"id": op_id, "kind": "join", "lobby_id": LOBBY, "bot": bot, "nick": nick,
            "invoke": tries[0][0], "end": tries[-1][1], "status": status,
            "ok": status == 200,
            "body": {"session_id": session_id} if status == 200 else "gave up",
            "tries": [{"server": "i0", "t": t, "end": e, "status": s} for t, e, s in tries]}


def leave(op_id, session_id, *tries):
    status = tries[-1][2]
    return {"id": op_id, "kind": "leave", "lobby_id": LOBBY, "session_id": session_id,
            "invoke": tries[0][0], "end": tries[-1][1], "status": status,
            "ok": status == 200,
            "tries": [{"server": "i1", "t": t, "end": e, "status": s} for t, e, s in tries]}


def doubles(ops):
    found = faults.double_answers([o for o in ops if o["kind"] == "join"],
                                  [o for o in ops if o["kind"] == "leave"])
    return [(s1, s2) for _, (s1, _), (s2, _) in found]


class DoubleCheckTest(unittest.TestCase):
    def test_answer_held_by_a_stopped_instance_is_not_a_double(self):
        # /tmp/vb-faults-gs_4ef07: S was joined (op 1210); op 1365's last
        # try reached i0 at 61.787, i0 read "joined S" from etcd and was
        # stopped at 61.81 until 67.82; S was left (op 1317, etcd applied it
        # at about 62.36) and op 1505 joined T; i0 then answered S.
        ops = [
            join(1210, "S", (50.566, 50.58, 503), (51.586, 51.779, 200)),
            leave(1317, "S", (54.846, 61.257, 503), (62.265, 62.377, 200)),
            join(1365, "S", (56.766, 57.775, 503), (58.775, 58.779, 503),
                 (59.78, 59.784, 503), (60.784, 60.787, 503), (61.787, 67.857, 200)),
            join(1505, "T", (62.377, 62.478, 200)),
            leave(1602, "T", (68.135, 68.182, 200)),
        ]
        self.assertEqual(doubles(ops), [])

    def test_answer_held_across_two_later_sessions_is_not_a_double(self):
        # /tmp/vb-faults-36q9a3wg: op 1445 on i0 (stopped at 64.178) answers
        # S at 70.308, after S was left, T joined and left, and U joined.
        ops = [
            join(1198, "S", (52.636, 53.641, 503), (54.641, 54.661, 200)),
            join(1201, "S", (52.758, 52.766, 503), (53.766, 53.768, 503),
                 (54.768, 54.776, 200)),
            join(1275, "S", (55.71, 55.718, 200)),
            join(1445, "S", (64.167, 70.308, 200)),
            leave(1494, "S", (64.472, 64.496, 200)),
            join(1529, "T", (65.87, 65.894, 200)),
            join(1550, "T", (66.71, 66.72, 200)),
            leave(1576, "T", (67.75, 67.76, 200)),
            join(1578, "U", (67.83, 67.846, 200)),
            leave(1633, "U", (70.522, 70.592, 200)),
        ]
        self.assertEqual(doubles(ops), [])

    def test_a_join_sent_after_the_leave_that_answers_the_old_session_is_a_double(self):
        # As the first history, but the answering try starts once the leave
        # of S is acknowledged: S was gone for all of that try.
        ops = [
            join(1210, "S", (50.566, 50.58, 503), (51.586, 51.779, 200)),
            leave(1317, "S", (54.846, 61.257, 503), (62.265, 62.377, 200)),
            join(1365, "S", (56.766, 57.775, 503), (62.4, 67.857, 200)),
            join(1505, "T", (62.377, 62.478, 200)),
        ]
        self.assertEqual(doubles(ops), [("S", "T")])

    def test_two_sessions_with_no_leave_are_a_double(self):
        ops = [join(1, "S", (1.0, 1.1, 200)), join(2, "T", (2.0, 2.1, 200))]
        self.assertEqual(doubles(ops), [("S", "T")])

    def test_overlapping_answers_with_the_leave_too_late_are_a_double(self):
        # T was answered (by 11.1) while S still held the name: its leave
        # only began at 12.
        ops = [
            join(1, "S", (10.0, 16.0, 200)),
            join(2, "T", (11.0, 11.1, 200)),
            leave(3, "S", (12.0, 12.1, 200)),
        ]
        self.assertEqual(doubles(ops), [("T", "S")])

    def test_a_leave_not_acknowledged_may_apply_later(self):
        # The leave of S got 503 at 3.1; it may have been applied after that.
        ops = [
            join(1, "S", (1.0, 1.1, 200)),
            leave(2, "S", (3.0, 3.1, 503)),
            join(3, "T", (5.0, 5.1, 200)),
        ]
        self.assertEqual(doubles(ops), [])

    def test_other_keys_do_not_meet(self):
        ops = [join(1, "S", (1.0, 1.1, 200)),
               join(2, "T", (2.0, 2.1, 200), nick="n4")]
        self.assertEqual(doubles(ops), [])


if __name__ == "__main__":
    unittest.main()
