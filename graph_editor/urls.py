from django.urls import path

from graph_editor import pages, views

urlpatterns = [
    path("", pages.dashboard, name="ui-dashboard"),
    path("ui/executions/", pages.executions_list, name="ui-executions"),
    path("ui/executions/<uuid:pk>/", views.execution_page, name="ui-execution"),
    path("ui/executions/<uuid:pk>/data/", views.execution_data, name="ui-execution-data"),
    path("ui/executions/<uuid:pk>/actions/<str:action>/", views.execution_action, name="ui-execution-action"),
    path("ui/editor/", views.editor_page, name="ui-editor"),
    path("ui/editor/<str:name>/", views.editor_page, name="ui-editor-latest"),
    path("ui/editor/<str:name>/<int:version>/", views.editor_page, name="ui-editor-version"),
    path("ui/definitions/", pages.definitions_list, name="ui-definitions"),
    path("ui/definitions/<str:name>/", pages.definition_page, name="ui-definition"),
    path("ui/definitions/<str:name>/<int:version>/", pages.definition_page, name="ui-definition-version"),
    path("ui/definitions/<str:name>/diff/", views.diff_page, name="ui-diff-latest"),
    path("ui/definitions/<str:name>/diff/<int:version>/<int:other>/", views.diff_page, name="ui-diff"),
    path("ui/definitions/<str:name>/<int:version>/start/", views.start_page, name="ui-start"),
]
