"""Signed callbacks of async nodes (SPEC section 4): the token the worker mints and the receiver checks
(``tokens``), the receiver's logic (``services``) and its HTTP view (``views``, routed by ``urls``).

A module of the engine rather than an app: it has no model, the worker mints the tokens the
receiver reads, and the receiver changes an execution only through executions.services.
"""
