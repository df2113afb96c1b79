from django.urls import path

from executions.callbacks.views import CallbackByHeaderView, CallbackView

urlpatterns = [
    path("callbacks/", CallbackByHeaderView.as_view(), name="callback-by-header"),
    path("callbacks/<str:token>/", CallbackView.as_view(), name="callback"),
]
