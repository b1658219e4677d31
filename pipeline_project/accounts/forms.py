from django import forms
from django.contrib.auth.forms import AuthenticationForm

from .services import TOKEN_LIFETIMES


class LoginForm(AuthenticationForm):
    username = forms.CharField(
        max_length=150,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What will use it, e.g. 'Houdini on ws-042'.",
        widget=forms.TextInput(attrs={"placeholder": "Houdini on ws-042"}),
    )
    lifetime = forms.ChoiceField(
        choices=[(k, "Never expires" if k == "never" else f"{k} days") for k in TOKEN_LIFETIMES],
        initial="365",
    )
