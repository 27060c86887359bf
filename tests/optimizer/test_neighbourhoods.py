"""Neighbourhoods of the stage solves' sub-MILPs: which servers are left free."""

from __future__ import annotations

import numpy as np

from optimizer import neighbourhoods as hood

# 3 servers with 2 columns each, plus one column owned by no server
OWNER = np.array([0, 0, 1, 1, 2, 2, -1])


def test_columns_of_never_includes_unowned_columns():
    assert hood.columns_of(OWNER, np.array([1])).tolist() == [0, 0, 1, 1, 0, 0, 0]
    assert not hood.columns_of(OWNER, np.array([-1])).any()


def test_undecided_are_the_servers_owning_a_fractional_column():
    fractional = np.array([False, False, True, True, False, False, True])
    assert hood.undecided(OWNER, fractional).tolist() == [1]


def test_cheapest_moves_ranks_by_reduced_cost_at_lower_ties_by_index():
    at_lower = np.array([False, True, True, False, True, False, True])
    reduced = np.array([0.0, 5.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    assert hood.cheapest_moves(OWNER, at_lower, reduced, 3, 2).tolist() == [1, 2]
    assert hood.cheapest_moves(OWNER, at_lower, None, 3, 2).tolist() == []
    assert hood.cheapest_moves(OWNER, at_lower, reduced, 3, 0).tolist() == []


def test_server_loss_splits_the_distance_to_the_lp_by_server():
    # minimisation: the LP takes column 0 of each server; reduced costs of the others > 0
    lp = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    reduced = np.array([0.0, 2.0, 0.0, 0.5, 0.0, 3.0, 0.0])
    plan = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0])  # servers 0 and 2 moved
    loss = hood.server_loss(OWNER, 3, lp, reduced, plan, maximize=False)
    assert loss.tolist() == [2.0, 0.0, 3.0]
    # a maximisation reports the same losses for reduced costs of the opposite sign
    flipped = hood.server_loss(OWNER, 3, lp, -reduced, plan, maximize=True)
    assert flipped.tolist() == loss.tolist()


def test_server_loss_without_reduced_costs_marks_where_plan_and_lp_differ():
    lp = np.array([1.0, 0.0, 1.0, 0.0, 0.4, 0.6, 0.0])
    plan = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    loss = hood.server_loss(OWNER, 3, lp, None, plan, maximize=False)
    assert loss.tolist() == [0.0, 2.0, 0.0]


def test_worst_servers_keeps_positive_losses_largest_first_ties_by_index():
    loss = np.array([0.0, 3.0, 1.0, 3.0, 1e-9])
    assert hood.worst_servers(loss, 2).tolist() == [1, 3]
    assert hood.worst_servers(loss, 10).tolist() == [1, 2, 3]
