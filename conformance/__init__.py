"""loss-conformance: a pytest suite that proves a loss implementation computes the specified
function.

Run it with ``pytest conformance --impl=NAME``; see the README for the candidate protocol and
the tolerance policy.
"""
