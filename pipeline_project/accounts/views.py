from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from pipeline_project.errors import DomainError

from . import services
from .forms import LoginForm, TokenCreateForm
from .models import ApiToken


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


@login_required
def token_list(request):
    form = TokenCreateForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        try:
            _, new_token = services.token_create(user=request.user, **form.cleaned_data)
        except DomainError as exc:
            form.add_error("name", str(exc))
        else:
            form = TokenCreateForm()
    tokens = ApiToken.objects.filter(user=request.user)
    context = {"form": form, "tokens": tokens, "new_token": new_token}
    template = "accounts/tokens.html#token-panel" if request.htmx else "accounts/tokens.html"
    return render(request, template, context, status=400 if form.errors else 200)


@login_required
@require_POST
def token_revoke(request, token_key):
    try:
        token = services.token_revoke(user=request.user, token_key=token_key)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Token “{token.name}” revoked. Tools using it now get 401.")
    return redirect("accounts:tokens")
