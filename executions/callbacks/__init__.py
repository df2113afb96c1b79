"""The receiver of async nodes' signed callbacks (SPEC section 4): its logic (``services``) and its
HTTP view (``views``, routed by ``urls``). The tokens it reads are minted by the worker with
executions/callback_tokens.py, which sits below both.

A part of the engine rather than an app: it has no model, it reads the tokens the worker
mints, and it changes an execution only through executions.services.
"""
