from django import forms

from pipeline_project.studio.models import Asset, Project, Shot

from .models import Priority


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(item, initial) for item in data]
        return [super().clean(data, initial)] if data else []


class TransferForm(forms.Form):
    name = forms.CharField(
        max_length=200, widget=forms.TextInput(attrs={"placeholder": "Scene_042_Final_v3"})
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    priority = forms.ChoiceField(choices=Priority.choices, initial=Priority.NORMAL)
    project = forms.ModelChoiceField(
        queryset=Project.objects.none(), required=False, empty_label="— none —"
    )
    shot = forms.ModelChoiceField(
        queryset=Shot.objects.none(), required=False, empty_label="— none —"
    )
    asset = forms.ModelChoiceField(
        queryset=Asset.objects.none(), required=False, empty_label="— none —"
    )
    paths = forms.MultipleChoiceField(
        required=False, help_text="Files and folders picked in staging."
    )
    uploads = MultipleFileField(required=False, help_text="Files from your computer.")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        projects = Project.objects.visible_to(user).active()
        self.fields["project"].queryset = projects
        self.fields["shot"].queryset = Shot.objects.filter(project__in=projects).select_related(
            "project"
        )
        self.fields["asset"].queryset = Asset.objects.filter(project__in=projects).select_related(
            "project"
        )
        # Paths are checked against the staging area by the service; any string may be posted.
        self.fields["paths"].choices = (
            [(p, p) for p in self.data.getlist("paths")] if self.data else []
        )

    def clean(self):
        data = super().clean()
        if (
            not self.errors
            and not data.get("paths")
            and not data.get("uploads")
            and self.require_files
        ):
            raise forms.ValidationError(
                "Pick files in staging or upload some: a transfer needs files."
            )
        return data

    require_files = True


class TransferEditForm(TransferForm):
    require_files = False
    remove = forms.MultipleChoiceField(required=False)

    def __init__(self, *args, transfer, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("project", "shot", "asset"):
            del self.fields[name]
        self.fields["remove"].choices = [(f.path, f.path) for f in transfer.files.all()]


class CommentForm(forms.Form):
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
