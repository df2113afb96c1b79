from django.urls import path

from callbacks.api.views import CallbackView

urlpatterns = [
    path("callbacks/", CallbackView.as_view(), name="callback-by-header"),
    path("callbacks/<str:token>/", CallbackView.as_view(), name="callback"),
]
