from django.urls import path

from graph_editor import views

urlpatterns = [
    path("ui/executions/<uuid:pk>/", views.execution_page, name="ui-execution"),
    path("ui/executions/<uuid:pk>/data/", views.execution_data, name="ui-execution-data"),
    path("ui/executions/<uuid:pk>/actions/<str:action>/", views.execution_action, name="ui-execution-action"),
    path("ui/editor/", views.editor_page, name="ui-editor"),
    path("ui/editor/<str:name>/", views.editor_page, name="ui-editor-latest"),
    path("ui/editor/<str:name>/<int:version>/", views.editor_page, name="ui-editor-version"),
    path("ui/definitions/<str:name>/diff/", views.diff_page, name="ui-diff-latest"),
    path("ui/definitions/<str:name>/diff/<int:version>/<int:other>/", views.diff_page, name="ui-diff"),
    path("ui/definitions/<str:name>/<int:version>/start/", views.start_page, name="ui-start"),
]
